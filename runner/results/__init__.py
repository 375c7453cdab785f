"""A results dir read, summarized once and rendered: records, statistics, tables, report. No Ray, no torch."""
