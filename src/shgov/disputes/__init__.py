"""异议核实与处理: disputes about register values, routed to the authoritative department."""
