"""Image files in and out: formats, decoding, PNG both ways, atomic writes."""
