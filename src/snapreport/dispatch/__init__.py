"""After filing: routing rules, roles and permissions, the order lifecycle, SLA deadlines."""
