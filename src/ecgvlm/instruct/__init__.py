"""ECGInstruct-format instruction datasets: building them from records, and reading real ones."""
