//! The stdlib scripts and templates embedded in the binary, with readable virtual names.

/// Every embedded script: its virtual name and source.
pub const SCRIPTS: &[(&str, &str)] = &[
    ("stdlib/kip.rhai", include_str!("../../stdlib/kip.rhai")),
    ("stdlib/app.rhai", include_str!("../../stdlib/app.rhai")),
    (
        "stdlib/lib/kipper.rhai",
        include_str!("../../stdlib/lib/kipper.rhai"),
    ),
];

/// Every embedded template: its virtual name and source.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "templates/crds/apps.yaml.j2",
        include_str!("../../templates/crds/apps.yaml.j2"),
    ),
    (
        "templates/crds/projects.yaml.j2",
        include_str!("../../templates/crds/projects.yaml.j2"),
    ),
    (
        "templates/app/owner.yaml.j2",
        include_str!("../../templates/app/owner.yaml.j2"),
    ),
    (
        "templates/app/app.yaml.j2",
        include_str!("../../templates/app/app.yaml.j2"),
    ),
    (
        "templates/app/deployment.yaml.j2",
        include_str!("../../templates/app/deployment.yaml.j2"),
    ),
    (
        "templates/app/service.yaml.j2",
        include_str!("../../templates/app/service.yaml.j2"),
    ),
    (
        "templates/app/ingress.yaml.j2",
        include_str!("../../templates/app/ingress.yaml.j2"),
    ),
];
