"""The data lake: department deliveries (归集), quality rules, authoritative sources (一数一源)."""
