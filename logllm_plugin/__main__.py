"""`python -m logllm_plugin` runs the CLI."""
from logllm_plugin.cli import main

main()
