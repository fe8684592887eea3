"""一目录 + 三清单: the catalog of every department's data resources and the demand, duty and negative lists."""
