from signdigits.cli import app

app(prog_name="signdigits")
