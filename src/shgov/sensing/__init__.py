"""城市运行数字体征: the sensing network's device types and devices, readings, indicators and warnings."""
