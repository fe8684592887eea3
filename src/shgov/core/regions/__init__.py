"""The 五级 of a city: city, districts, townships (街道/镇), communities (居委/村委) and grids."""
