"""Histograms, interval aggregation and the InfluxDB sink."""
