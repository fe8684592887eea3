"""免申即享 and 政策找人: policies in a small language, evaluated over the registers, granted unasked."""
