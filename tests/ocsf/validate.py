"""Checks every event of an NDJSON file against its OCSF class's JSON Schema,
for each OCSF version given. Prints a JSON summary; exits 1 if any is invalid."""

import json
import sys

import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema


def main() -> int:
    path, versions = sys.argv[1], sys.argv[2:] or ["1.1.0"]
    with open(path, encoding="utf-8") as f:
        events = [json.loads(line) for line in f if line.strip()]
    problems, classes = [], {}
    for version in versions:
        schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
        validators = {}
        for i, event in enumerate(events):
            uid = event.get("class_uid")
            if uid not in validators:
                name = schema.lookup_class_name_from_uid(uid)
                class_schema = schema.get_class_schema(name)
                validators[uid] = jsonschema.Draft202012Validator(class_schema)
            classes[str(uid)] = classes.get(str(uid), 0) + (1 if version == versions[0] else 0)
            for error in validators[uid].iter_errors(event):
                where = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"OCSF {version}, event {i + 1} (class {uid}) at /{where}: {error.message}")
    print(json.dumps({"events": len(events), "versions": versions, "classes": classes, "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
