from dlops.cli import app

app(prog_name="dlops")
