"""Building blocks shared by several model families (attention, normalisation, init, ...)."""
