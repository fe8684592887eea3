"""The base registers (综合库): person, enterprise, address and licence, built from the lake under 一数一源."""
