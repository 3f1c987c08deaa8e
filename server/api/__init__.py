"""The document API: documents, versions, library, sharing, comments, export and import."""
