from gankit.cli import entry

entry()
