"""Open311 GeoReport v2 under ``/open311/v2``: discovery, the service catalog (the alarm
types), and service requests (work orders) to create, list and read, in XML and JSON.

``routes.create_open311_app`` builds the mounted application; ``documents`` renders the
specification's documents, ``views`` maps orders to requests, ``intake`` turns a POST into a
report, ``keys`` checks API keys and ``links`` signs the photo links.
"""
