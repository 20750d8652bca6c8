"""`python -m app` is the `mailrelease` command."""
from app.cli import main

main()
