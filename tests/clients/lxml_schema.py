"""Compiles the schema of a WSDL with lxml (libxml2's XML Schema processor), as code generators
do before anything else: the schema inlined in the WSDL's `wsdl:types` (one file, from stdin), or
the repository's WSDL file whose import names the schema beside it (a path).
Prints "ok" and the number of global elements, or the error and exits 1.

usage: lxml_schema.py -          (a single-file WSDL on stdin)
       lxml_schema.py WSDL_PATH  (a WSDL file importing its schema by a relative location)
"""
import os
import sys

from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"

source = sys.argv[1]
if source == "-":
    doc = etree.fromstring(sys.stdin.buffer.read())
    schemas = doc.findall(f"{{{WSDL}}}types/{{{XS}}}schema")
    if len(schemas) != 1:
        sys.exit(f"expected one inlined schema, found {len(schemas)}")
    schema = schemas[0]
else:
    doc = etree.parse(source).getroot()
    imports = doc.findall(f"{{{WSDL}}}types/{{{XS}}}schema/{{{XS}}}import")
    if len(imports) != 1:
        sys.exit(f"expected one schema import, found {len(imports)}")
    location = imports[0].get("schemaLocation")
    if "://" in location or location.startswith("/"):
        sys.exit(f"the schema location is not relative: {location}")
    schema = etree.parse(os.path.join(os.path.dirname(source), location)).getroot()
try:
    etree.XMLSchema(schema)
except etree.XMLSchemaParseError as e:
    sys.exit(f"schema does not compile: {e}")
print("ok", len(schema.findall(f"{{{XS}}}element")))
