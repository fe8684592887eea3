"""The open datasets as DCAT-AP 3.0: a dcat:Catalog of dcat:Datasets with their dcat:Distributions, the
CKAN API as a dcat:DataService, publishers as foaf:Agents, themes as a skos:ConceptScheme, frequencies,
access rights, file types and languages from the EU vocabularies — serialised as Turtle, JSON-LD or
RDF/XML. Checked against the official SHACL shapes in the tests."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from shgov.opendata.service import (
    LICENSE,
    MIME_TYPES,
    THEMES,
    OpenDataset,
    OpenResource,
    Organization,
    download_url,
    organization_name,
)

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
EU = "http://publications.europa.eu/resource/authority/"
FREQUENCIES = {
    "realtime": "CONT",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "half_yearly": "ANNUAL_2",
    "yearly": "ANNUAL",
    "other": "IRREG",
}
FILE_TYPES = {"CSV": "CSV", "JSONL": "JSON", "XLSX": "XLSX", "Parquet": "PARQUET"}
ACCESS_RIGHTS = {"unconditional": "PUBLIC", "conditional": "RESTRICTED"}
SERIALISATIONS = {
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "jsonld": ("json-ld", "application/ld+json"),
    "rdf": ("xml", "application/rdf+xml"),
}


def _at(value: datetime) -> Literal:
    return Literal(value.isoformat(timespec="seconds"), datatype=XSD.dateTime)


class _Builder:
    def __init__(self, base_url: str, site_title: str) -> None:
        self.base = base_url.rstrip("/")
        self.graph = Graph()
        for prefix, space in (("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("skos", SKOS), ("vcard", VCARD)):
            self.graph.bind(prefix, space)
        self.catalog = URIRef(f"{self.base}/opendata/catalog")
        self.service = URIRef(f"{self.base}/api/3/action")
        self.scheme = URIRef(f"{self.base}/opendata/id/themes")
        self.licence = URIRef(f"{self.base}/opendata/licence")
        self.language = URIRef(f"{EU}language/ZHO")
        self.site_title = site_title

    def add(self, subject: URIRef | BNode, predicate: URIRef, value: URIRef | BNode | Literal) -> None:
        self.graph.add((subject, predicate, value))

    def typed(self, node: URIRef, kind: URIRef, label: str | None = None) -> URIRef:
        self.add(node, RDF.type, kind)
        if label:
            self.add(node, SKOS.prefLabel if kind == SKOS.Concept else RDFS.label, Literal(label, lang="zh"))
        return node

    def agent(self, org: Organization | None, department_code: str) -> URIRef:
        name = org.name if org else organization_name(department_code)
        node = URIRef(f"{self.base}/opendata/id/organization/{name}")
        self.add(node, RDF.type, FOAF.Agent)
        self.add(node, FOAF.name, Literal(org.title if org else department_code, lang="zh"))
        self.add(node, DCTERMS.identifier, Literal(department_code))
        return node

    def frame(self, modified: datetime | None) -> None:
        catalog = self.catalog
        self.add(catalog, RDF.type, DCAT.Catalog)
        self.add(catalog, DCTERMS.title, Literal(self.site_title, lang="zh"))
        self.add(catalog, DCTERMS.title, Literal("SH-GOV open data portal", lang="en"))
        self.add(catalog, DCTERMS.description, Literal("公共数据开放平台的开放数据目录", lang="zh"))
        self.add(catalog, DCTERMS.description, Literal("The catalogue of the open-data portal", lang="en"))
        publisher = URIRef(f"{self.base}/opendata/id/organization/portal")
        self.add(publisher, RDF.type, FOAF.Agent)
        self.add(publisher, FOAF.name, Literal(self.site_title, lang="zh"))
        self.add(catalog, DCTERMS.publisher, publisher)
        self.add(catalog, DCTERMS.language, self.typed(self.language, DCTERMS.LinguisticSystem))
        self.add(catalog, DCTERMS.license, self.typed(self.licence, DCTERMS.LicenseDocument, LICENSE["license_title"]))
        homepage = URIRef(f"{self.base}/opendata")
        self.add(catalog, FOAF.homepage, self.typed(homepage, FOAF.Document))
        self.add(catalog, DCAT.themeTaxonomy, self.typed(self.scheme, SKOS.ConceptScheme))
        self.add(self.scheme, DCTERMS.title, Literal("开放领域", lang="zh"))
        if modified is not None:
            self.add(catalog, DCTERMS.modified, _at(modified))
        service = self.service
        self.add(catalog, DCAT.service, service)
        self.add(service, RDF.type, DCAT.DataService)
        self.add(service, DCTERMS.title, Literal("CKAN Action API", lang="en"))
        self.add(service, DCAT.endpointURL, self.typed(service, RDFS.Resource))
        description = URIRef(f"{self.base}/api/3/action/help_show?name=package_search")
        self.add(service, DCAT.endpointDescription, self.typed(description, RDFS.Resource))
        self.add(service, DCTERMS.license, self.licence)

    def dataset(self, dataset: OpenDataset, resources: Sequence[OpenResource], org: Organization | None) -> None:
        node = URIRef(f"{self.base}/opendata/id/dataset/{dataset.id}")
        self.add(self.catalog, DCAT.dataset, node)
        self.add(self.service, DCAT.servesDataset, node)
        self.add(node, RDF.type, DCAT.Dataset)
        self.add(node, DCTERMS.identifier, Literal(str(dataset.id)))
        self.add(node, DCTERMS.title, Literal(dataset.title, lang="zh"))
        self.add(node, DCTERMS.description, Literal(dataset.notes or dataset.title, lang="zh"))
        self.add(node, DCTERMS.publisher, self.agent(org, dataset.department_code))
        self.add(node, DCTERMS.issued, _at(dataset.published_at))
        self.add(node, DCTERMS.modified, _at(dataset.updated_at))
        self.add(node, DCTERMS.language, self.language)
        for tag in dataset.tags:
            self.add(node, DCAT.keyword, Literal(tag, lang="zh"))
        theme = URIRef(f"{self.base}/opendata/id/theme/{dataset.theme}")
        self.typed(theme, SKOS.Concept, THEMES[dataset.theme][0])
        self.add(theme, SKOS.inScheme, self.scheme)
        self.add(node, DCAT.theme, theme)
        frequency = URIRef(f"{EU}frequency/{FREQUENCIES.get(dataset.update_cycle, 'IRREG')}")
        self.add(node, DCTERMS.accrualPeriodicity, self.typed(frequency, DCTERMS.Frequency))
        rights = URIRef(f"{EU}access-right/{ACCESS_RIGHTS[dataset.open_type]}")
        self.add(node, DCTERMS.accessRights, self.typed(rights, DCTERMS.RightsStatement))
        page = URIRef(f"{self.base}/opendata/{dataset.name}")
        self.add(node, DCAT.landingPage, self.typed(page, FOAF.Document))
        contact = URIRef(f"{self.base}/opendata/id/organization/{organization_name(dataset.department_code)}/contact")
        self.add(contact, RDF.type, VCARD.Kind)  # the shapes check the class itself (no inference)
        self.add(contact, RDF.type, VCARD.Organization)
        self.add(contact, VCARD.fn, Literal(org.title if org else dataset.department_code, lang="zh"))
        self.add(node, DCAT.contactPoint, contact)
        for resource in resources:
            self.distribution(node, dataset, resource)

    def distribution(self, dataset_node: URIRef, dataset: OpenDataset, resource: OpenResource) -> None:
        node = URIRef(f"{self.base}/opendata/id/distribution/{resource.id}")
        url = URIRef(download_url(self.base, dataset, resource.format))
        self.add(dataset_node, DCAT.distribution, node)
        self.add(node, RDF.type, DCAT.Distribution)
        self.add(node, DCTERMS.title, Literal(f"{dataset.title}（{resource.format}）", lang="zh"))
        self.add(node, DCAT.accessURL, self.typed(url, RDFS.Resource))
        self.add(node, DCAT.downloadURL, url)
        self.add(node, DCAT.accessService, self.service)
        self.add(node, DCTERMS.license, self.licence)
        self.add(node, DCTERMS.modified, _at(dataset.updated_at))
        file_type = URIRef(f"{EU}file-type/{FILE_TYPES[resource.format]}")
        self.add(node, DCTERMS.format, self.typed(file_type, DCTERMS.MediaTypeOrExtent))
        media = URIRef(f"https://www.iana.org/assignments/media-types/{MIME_TYPES[resource.format]}")
        self.add(node, DCAT.mediaType, self.typed(media, DCTERMS.MediaType))


def catalog_graph(
    datasets: Sequence[OpenDataset],
    resources: Mapping[uuid.UUID, Sequence[OpenResource]],
    orgs: Mapping[str, Organization],
    base_url: str,
    site_title: str,
) -> Graph:
    """The whole open catalog (or one dataset of it, when ``datasets`` holds one) as an RDF graph."""
    builder = _Builder(base_url, site_title)
    builder.frame(max((d.updated_at for d in datasets), default=None))
    for dataset in datasets:
        builder.dataset(dataset, resources.get(dataset.id, ()), orgs.get(dataset.department_code))
    return builder.graph


def serialise(graph: Graph, extension: str) -> tuple[bytes, str]:
    """The graph in the format an extension names (``ttl``, ``jsonld``, ``rdf``) and its media type."""
    fmt, media_type = SERIALISATIONS[extension]
    data = graph.serialize(format=fmt, encoding="utf-8")
    return data, media_type
