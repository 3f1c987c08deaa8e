"""Among replicas: the broker seam, the Redis broker, and the limits they share in Redis."""
