"""Loads the server's WSDL in zeep (a standard SOAP client) and calls ServicesOuverts through it
with the pharmacist's client certificate. Prints the response code, then one AMC number a line.

usage: zeep_services.py WSDL_URL SERVER_CA CLIENT_CERT CLIENT_KEY
"""
import sys
import uuid

from requests import Session
from zeep import Client
from zeep.transports import Transport

wsdl, ca, cert, key = sys.argv[1:5]
session = Session()
# The machine may export REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, which override `verify`.
session.trust_env = False
session.verify = ca
session.cert = (cert, key)
client = Client(wsdl, transport=Transport(session=session))
reply = client.service.ServicesOuverts(
    entete={"id_logiciel": "ZEEP", "version_logiciel": "1.0", "id_requete": str(uuid.uuid4())}
)
print(reply.code_reponse.code)
for amc in reply.amc:
    print(amc.numero_amc)
