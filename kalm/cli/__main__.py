from kalm.cli import app

app()
