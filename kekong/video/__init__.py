"""Video to video: decode, generate frame by frame tied in time, encode with provenance."""
