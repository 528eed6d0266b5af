"""The CSDL document (``$metadata``) of the emulated infobase, in the shape 1C's standard interface writes it.

EDMX 1.0 with ``DataServiceVersion`` 3.0, one schema in namespace ``StandardODATA``, container ``EnterpriseV8``.
Each object set is an ``EntityType`` keyed by ``Ref_Key``; a tabular section is both a ``…_RowType`` complex type
(the owner's ``Collection(...)`` property) and an entity set ``<Owner>_<Section>`` keyed by ``Ref_Key`` +
``LineNumber``; the register has its record-set type, its flat ``_RecordType`` and the ``Balance`` virtual table
as a bound ``FunctionImport`` returning ``Collection(StandardODATA.AccumulationRegister_БонусныеБаллы_Balance)``;
documents get the bound, side-effecting ``Post``/``Unpost`` function imports (reference/onec.md §1.5-1.6).
"""

from __future__ import annotations

from collections.abc import Iterable

from connector.sandbox.onec.schema import (
    REGISTER,
    REGISTER_RECORDS,
    EntitySchema,
    Flavour,
    Prop,
    infobase_schema,
    register_dimensions,
    register_props,
)

__all__ = ["NAMESPACE", "metadata_xml", "published_sets"]

NAMESPACE = "StandardODATA"
_KEYS = frozenset({"Ref_Key", "LineNumber", "Recorder"})


def _properties(props: Iterable[Prop], *, indent: str = "        ") -> list[str]:
    lines = []
    for name, edm_type in props:
        nullable = "false" if name in _KEYS else "true"
        lines.append(f'{indent}<Property Name="{name}" Type="Edm.{edm_type}" Nullable="{nullable}"/>')
    return lines


def _entity_type(
    name: str, keys: Iterable[str], props: Iterable[Prop], collections: dict[str, str]
) -> list[str]:
    lines = [f'      <EntityType Name="{name}">', "        <Key>"]
    lines += [f'          <PropertyRef Name="{key}"/>' for key in keys]
    lines.append("        </Key>")
    lines += _properties(props)
    for prop, row_type in collections.items():
        lines.append(
            f'        <Property Name="{prop}" Type="Collection({NAMESPACE}.{row_type})" Nullable="true"/>'
        )
    lines.append("      </EntityType>")
    return lines


def _complex_type(name: str, props: Iterable[Prop]) -> list[str]:
    return [f'      <ComplexType Name="{name}">', *_properties(props), "      </ComplexType>"]


def _object_types(entity: EntitySchema) -> list[str]:
    row_types = {section: f"{entity.name}_{section}_RowType" for section in entity.sections}
    lines = _entity_type(entity.name, ["Ref_Key"], entity.props, row_types)
    for section, row_type in row_types.items():
        props = tuple(entity.section_types(section).items())
        lines += _complex_type(row_type, props)
        lines += _entity_type(f"{entity.name}_{section}", ["Ref_Key", "LineNumber"], props, {})
    return lines


def _register_types(flavour: Flavour) -> list[str]:
    props = register_props(flavour)
    balance = [(dim, "Guid") for dim in register_dimensions(flavour)]
    balance += [("НачисленоBalance", "Double"), ("КСписаниюBalance", "Double")]
    recorder = [("Recorder", "String"), ("Recorder_Type", "String")]
    return [
        *_entity_type(REGISTER_RECORDS, ["Recorder", "LineNumber"], props, {}),
        *_complex_type(f"{REGISTER}_RowType", props),
        *_entity_type(REGISTER, ["Recorder"], recorder, {"RecordSet": f"{REGISTER}_RowType"}),
        *_complex_type(f"{REGISTER}_Balance", balance),
    ]


def published_sets(flavour: Flavour) -> list[str]:
    """Names of every entity set the flavour publishes, in ``$metadata`` order."""
    names: list[str] = []
    for entity in infobase_schema(flavour).values():
        names.append(entity.name)
        names += [f"{entity.name}_{section}" for section in entity.sections]
    return [*names, REGISTER, REGISTER_RECORDS]


def _function_imports(flavour: Flavour) -> list[str]:
    lines = []
    for entity in infobase_schema(flavour).values():
        if entity.kind != "document":
            continue
        for action in ("Post", "Unpost"):
            lines += [
                f'        <FunctionImport Name="{action}" IsBindable="true" IsSideEffecting="true">',
                f'          <Parameter Name="bindingParameter" Type="{NAMESPACE}.{entity.name}"/>',
                '          <Parameter Name="PostingModeOperational" Type="Edm.Boolean"/>'
                if action == "Post"
                else "",
                "        </FunctionImport>",
            ]
    lines += [
        f'        <FunctionImport Name="Balance" ReturnType="Collection({NAMESPACE}.{REGISTER}_Balance)" '
        'IsBindable="true" IsSideEffecting="false">',
        f'          <Parameter Name="bindingParameter" Type="Collection({NAMESPACE}.{REGISTER})"/>',
        '          <Parameter Name="Period" Type="Edm.DateTime"/>',
        '          <Parameter Name="Condition" Type="Edm.String"/>',
        '          <Parameter Name="Dimensions" Type="Edm.String"/>',
        "        </FunctionImport>",
    ]
    return [line for line in lines if line]


def metadata_xml(flavour: Flavour) -> str:
    """The whole ``$metadata`` document of a flavour."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" '
        'xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" Version="1.0">',
        '  <edmx:DataServices m:DataServiceVersion="3.0">',
        f'    <Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" Namespace="{NAMESPACE}">',
    ]
    for entity in infobase_schema(flavour).values():
        lines += _object_types(entity)
    lines += _register_types(flavour)
    lines.append('      <EntityContainer Name="EnterpriseV8" m:IsDefaultEntityContainer="true">')
    lines += [
        f'        <EntitySet Name="{name}" EntityType="{NAMESPACE}.{name}"/>'
        for name in published_sets(flavour)
    ]
    lines += _function_imports(flavour)
    lines += ["      </EntityContainer>", "    </Schema>", "  </edmx:DataServices>", "</edmx:Edmx>", ""]
    return "\n".join(lines)
