from signdigits.cli.app import app

app(prog_name="signdigits")
