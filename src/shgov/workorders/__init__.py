"""一网统管: work orders from 12345, 随申拍, patrols, sensors and Open311."""
