"""One module per command: validate a spec, run, return tables, write the folder."""
