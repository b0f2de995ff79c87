use super::*;
use crate::store::conformance;

#[path = "../../../tests/common/servers.rs"]
mod servers;

/// A store at a fresh prefix of the endpoint's bucket.
fn store_at(endpoint: &servers::Endpoint, prefix: &str) -> CloudStore {
    CloudStore::open_with(&endpoint.url(prefix), &endpoint.vars).unwrap()
}

#[test]
fn urls_name_a_service_a_bucket_and_a_prefix() {
    let loc = Location::parse("s3://bucket-1/srv/vault/").unwrap();
    assert_eq!(
        (loc.service, loc.bucket.as_str(), loc.prefix.as_str()),
        (Service::S3, "bucket-1", "srv/vault")
    );
    assert_eq!(loc.to_string(), "s3://bucket-1/srv/vault");
    let loc = Location::parse("azure://box").unwrap();
    assert_eq!((loc.service, loc.prefix.as_str()), (Service::Azure, ""));
    assert_eq!(loc.to_string(), "azure://box");
    assert_eq!(Location::parse("s3://b/my%20vault").unwrap().prefix, "my vault");
    for (url, says) in [
        ("gs://b/v", "unsupported scheme 'gs'"),
        ("s3://", "no bucket"),
        ("s3:///vault", "no bucket"),
        ("azure://a b/v", "not a bucket or container name"),
        ("s3://b/a//c", "vault URL 's3://b/a//c': "),
        ("s3://b/v?versionId=1", "query strings"),
    ] {
        let err = Location::parse(url).unwrap_err().to_string();
        assert!(err.contains(says), "{url}: {err}");
        assert!(!err.contains('\n'), "{url}: one line: {err}");
    }
}

#[test]
fn unknown_settings_and_plain_http_without_consent_are_refused() {
    let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let refused =
        |url: &str, pairs: &[(&str, &str)]| CloudStore::open_with(url, &vars(pairs)).err().unwrap().to_string();
    assert_eq!(
        refused("s3://b/v", &[("AWS_NO_SUCH_THING", "1")]),
        "s3://b/v: 'AWS_NO_SUCH_THING' is not a setting of this service"
    );
    assert_eq!(
        refused(
            "s3://b/v",
            &[("AWS_ENDPOINT_URL", "http://minio:9000"), ("AWS_ALLOW_HTTP", "false")]
        ),
        "s3://b/v: the endpoint http://minio:9000 is plain HTTP: set AWS_ALLOW_HTTP=true to allow it"
    );
    assert!(
        refused(
            "azure://c",
            &[
                ("AZURE_STORAGE_ENDPOINT", "http://h:10000/a"),
                ("AZURE_ALLOW_HTTP", "false")
            ]
        )
        .ends_with("set AZURE_ALLOW_HTTP=true to allow it")
    );
    let allowed = vars(&[("AWS_ENDPOINT_URL", "http://minio:9000"), ("AWS_ALLOW_HTTP", "true")]);
    assert_eq!(
        CloudStore::open_with("s3://b/v", &allowed).unwrap().describe(),
        "s3://b/v"
    );
}

#[test]
fn s3_store_conforms() {
    let moto = servers::moto();
    conformance(&store_at(&moto, "conformance/vault"));
    object_store_specifics(&moto);
}

#[test]
fn azure_store_conforms() {
    let azurite = servers::azurite();
    conformance(&store_at(&azurite, "conformance/vault"));
    object_store_specifics(&azurite);
}

/// What only object stores can get wrong: prefixes that are string prefixes of each other, a bucket that does not
/// exist, a create retried after its first attempt landed.
fn object_store_specifics(endpoint: &servers::Endpoint) {
    let v1 = store_at(endpoint, "iso/v1");
    let v10 = store_at(endpoint, "iso/v10");
    let root = store_at(endpoint, "");
    v1.create("config", b"one").unwrap();
    v10.create("config", b"ten").unwrap();
    assert_eq!(names(&v1, ""), ["config"], "iso/v1 does not see iso/v10");
    assert_eq!(v1.read("config", None).unwrap(), b"one");
    assert!(
        names(&root, "iso/").contains(&"iso/v10/config".to_string()),
        "names are keys below the prefix"
    );
    assert!(names(&root, "").contains(&"conformance/vault/data/big".to_string()));

    v1.create("points/p1", b"record").unwrap();
    v1.create("points/p1", b"record")
        .expect("an identical object counts as created");
    assert!(matches!(
        v1.create("points/p1", b"other"),
        Err(StoreError::AlreadyExists(_))
    ));

    let url = format!("{}://no-such-bucket/v", endpoint.scheme);
    let missing = CloudStore::open_with(&url, &endpoint.vars).unwrap();
    for err in [
        missing.create("config", b"x").unwrap_err(),
        missing.list("").unwrap_err(),
    ] {
        assert_eq!(
            err.to_string(),
            format!("{url}: the bucket or container does not exist")
        );
    }
    assert!(matches!(missing.read("config", None), Err(StoreError::NotFound(_))));
}

fn names(store: &CloudStore, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = store.list(prefix).unwrap().into_iter().map(|o| o.name).collect();
    names.sort();
    names
}
