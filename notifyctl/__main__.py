from notifyctl.cli import app

app()
