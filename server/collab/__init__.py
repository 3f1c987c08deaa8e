"""The live document: its socket, rooms, connections, presence, and the Yjs wire and update checks."""
