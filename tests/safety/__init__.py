"""Safety under concurrency, interrupts and kills."""
