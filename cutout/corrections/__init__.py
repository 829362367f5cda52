"""``cutout corrections export``: a tenant's corrected jobs as a training set
(cutout/commands/corrections.py parses the command line; :mod:`.export` does the work)."""
