from gradvar.cli import entry

entry(prog_name="gradvar")
