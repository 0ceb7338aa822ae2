"""Teaching material, one module per page that uses it (``inside``: the *Inside one attention head* page)."""
