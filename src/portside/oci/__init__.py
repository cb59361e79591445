"""Pure OCI vocabulary: digests, names, media types, manifests and the error catalogue. No I/O."""
