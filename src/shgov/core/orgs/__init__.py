"""Tenants (the city and its districts) and departments (委办局 and their district counterparts)."""
