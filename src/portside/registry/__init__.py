"""The distribution protocol's logic: blobs, uploads, manifests, tags, referrers, catalog.

Services here take validated values, talk to the database and storage, and raise
:class:`portside.oci.errors.RegistryError`; they know nothing about HTTP.
"""
