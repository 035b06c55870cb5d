"""What every source reader needs: table reading, cell parsers, codes, files, raw schemas."""
