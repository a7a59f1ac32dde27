"""Training pipeline for Switchyard's classical models (churn scorer, request classifier)."""
