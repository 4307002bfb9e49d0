"""The phase plan: its model, the YAML loader with file:line errors, and the DAG."""
