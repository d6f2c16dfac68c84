"""The jobd command line: typer commands and the rich views."""
