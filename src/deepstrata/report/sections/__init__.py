"""Report sections, one registered function each."""
