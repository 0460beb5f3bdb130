# The package ayrshare_provider.example_dags in the wheel (pyproject.toml maps this folder to it),
# so that the installed demo and users find these files. No code: safe-mode DAG discovery skips it.
