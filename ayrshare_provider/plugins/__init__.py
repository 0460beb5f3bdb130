"""Airflow plugins the provider registers (``get_provider_info()["plugins"]``)."""
