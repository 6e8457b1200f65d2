"""The Streamlit dashboard (read-only)."""
