"""What every source reader needs, written once (a reader never re-implements it).

* :mod:`.tables`: reading tables: encoding policy (UTF-8 only, refused with the line otherwise),
  CSV dialect, XLSX sheets, the header-row detector, line numbers for messages;
* :mod:`.cells`: the French/English number parser, dates, yes/no, text of a cell;
* :mod:`.codes`: QPV codes of both geographies, INSEE codes, SIRET/SIREN (python-stdnum);
* :mod:`.files`: the files of a source folder, years in file names, SHA-256;
* :mod:`.raw_schemas`: the schema of every raw table, rejects, ingestion log, and their writers;
* :mod:`.assets`: the ingestion asset factory (metadata and the two checks of every source);
* :mod:`.privacy`: personal-data columns dropped before the warehouse.
"""
