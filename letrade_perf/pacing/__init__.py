"""Process-wide REQUEST_WEIGHT and ORDERS budgets with header feedback and distributed shares."""
