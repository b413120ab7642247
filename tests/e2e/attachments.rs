//! Attachments end to end: uploads from a visitor and an agent, messages that carry them, signed
//! downloads, the content (not the name) deciding the type, the tenant's limits, the bot's
//! handoff on an image alone, and the retention sweep.

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_tests::TestApp;

/// A real PNG of `width` × `height` (a gradient).
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    gradient(width, height, image::ImageFormat::Png)
}

/// A real JPEG of `width` × `height` (a gradient).
pub(crate) fn jpeg(width: u32, height: u32) -> Vec<u8> {
    gradient(width, height, image::ImageFormat::Jpeg)
}

fn gradient(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut bytes, format)
        .expect("image");
    bytes.into_inner()
}

/// The start of a PNG that declares `width` × `height` (RGBA) and holds no pixels: what a
/// decompression bomb shows before it is decoded.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let crc = |bytes: &[u8]| {
        let mut crc = u32::MAX;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    };
    let mut header = b"IHDR".to_vec();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    // The header, then an empty data chunk (a reader wants one before it tells the size).
    for chunk in [header, b"IDAT".to_vec()] {
        png.extend((chunk.len() as u32 - 4).to_be_bytes());
        png.extend(&chunk);
        png.extend(crc(&chunk).to_be_bytes());
    }
    png
}

/// A PNG of noise (incompressible: about 3 bytes a pixel).
pub(crate) fn noisy_png(side: u32) -> Vec<u8> {
    let mut state: u32 = 0x9E37_79B9;
    let image = image::RgbImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("png");
    bytes.into_inner()
}

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

async fn upload(app: &TestApp, path: &str, token: &str, name: &str, body: Vec<u8>) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(&format!("{path}?name={}", urlencode(name))))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn patch_settings(app: &TestApp, patch: Value) -> (u16, Value) {
    let response = app
        .http
        .patch(app.url(&format!("/v1/tenants/{}/settings", app.tenant)))
        .bearer_auth(&app.admin_key)
        .json(&patch)
        .send()
        .await
        .expect("settings");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn fetch(app: &TestApp, link: &str) -> reqwest::Response {
    app.http.get(app.url(link)).send().await.expect("download")
}

#[tokio::test]
async fn a_visitor_sends_a_photo_and_the_agent_replies_with_a_pdf() {
    let app = TestApp::spawn().await;
    let (_, agent_token) = app.create_agent("Alice", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;

    let photo = png(640, 480);
    let (status, view) = upload(
        &app,
        "/v1/web/attachments",
        &visitor,
        "破损的杯子.png",
        photo.clone(),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["kind"], "image");
    assert_eq!(view["media_type"], "image/png");
    assert_eq!(view["name"], "破损的杯子.png");
    assert_eq!(view["size"], photo.len());
    assert_eq!(
        (view["width"].as_i64(), view["height"].as_i64()),
        (Some(640), Some(480))
    );
    let id = view["id"].as_str().unwrap().to_owned();

    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"it arrived broken","attachments":[id]}))
        .await;
    customer.expect_type("receipt").await;
    let own = customer.expect_text("it arrived broken").await;
    assert_eq!(own["attachments"][0]["id"], id.as_str());
    // A resend is stored once.
    customer
        .send(json!({"type":"send","client_msg_id":"c1","text":"it arrived broken","attachments":[id]}))
        .await;
    let again = customer.expect_type("receipt").await;
    assert_eq!(again["seq"], own["seq"]);

    let assigned = agent.expect_type("assigned").await;
    let conversation_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    let seen = &assigned["messages"][0]["attachments"][0];
    assert_eq!(seen["name"], "破损的杯子.png");
    // The agent opens the thumbnail and the full image.
    let thumbnail = fetch(&app, seen["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(thumbnail.status(), 200);
    assert_eq!(thumbnail.headers()["content-type"], "image/jpeg");
    let bytes = thumbnail.bytes().await.unwrap();
    let small = image::load_from_memory(&bytes).expect("a jpeg");
    assert_eq!((small.width(), small.height()), (320, 240));
    let full = fetch(&app, seen["url"].as_str().unwrap()).await;
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "image/png");
    assert_eq!(full.headers()["x-content-type-options"], "nosniff");
    assert!(full.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    let etag = full.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(full.bytes().await.unwrap().to_vec(), photo);
    let cached = app
        .http
        .get(app.url(seen["url"].as_str().unwrap()))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    // A tampered or expired link opens nothing.
    let link = seen["url"].as_str().unwrap();
    let tampered = link.replace("v=file", "v=thumb");
    let response = fetch(&app, &tampered).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "bad_link");

    // The agent replies with a PDF, captionless.
    let (status, pdf) = upload(
        &app,
        "/v1/agent/attachments",
        &agent_token,
        "return label.pdf",
        PDF.to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{pdf}");
    assert_eq!(pdf["kind"], "file");
    assert_eq!(pdf["media_type"], "application/pdf");
    assert!(pdf.get("thumbnail_url").is_none());
    agent
        .send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a1","attachments":[pdf["id"]]}))
        .await;
    agent.expect_type("receipt").await;
    let reply = customer
        .expect("the pdf", |f| {
            f["type"] == "message" && f["sender"] == "agent"
        })
        .await;
    assert_eq!(reply["text"], "");
    let file = &reply["attachments"][0];
    assert_eq!(file["name"], "return label.pdf");
    let download = fetch(&app, file["url"].as_str().unwrap()).await;
    assert_eq!(download.status(), 200);
    assert_eq!(download.headers()["content-type"], "application/pdf");
    assert_eq!(
        download.headers()["content-disposition"],
        "attachment; filename=\"return label.pdf\"; filename*=UTF-8''return%20label.pdf"
    );
    assert_eq!(download.bytes().await.unwrap().to_vec(), PDF);

    // The history (admin API) shows both, with fresh links.
    let (status, history) = app
        .admin_get(&format!(
            "/v1/tenants/{}/conversations/{conversation_id}/messages",
            app.tenant
        ))
        .await;
    assert_eq!(status, 200);
    let with_files: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("attachments").is_some())
        .collect();
    assert_eq!(with_files.len(), 2);
}

#[tokio::test]
async fn the_content_decides_and_the_tenant_limits_hold() {
    let app = TestApp::spawn().await;
    let visitor = app.visitor().await;
    let other = app.visitor().await;

    // HTML named like an image is text, served as a download, never inline.
    let (status, view) = upload(
        &app,
        "/v1/web/attachments",
        &visitor,
        "cute.png",
        b"<html><script>alert(1)</script></html>".to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["media_type"], "text/plain");
    assert_eq!(view["kind"], "file");
    let response = fetch(&app, view["url"].as_str().unwrap()).await;
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert!(response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));

    // A program is refused whatever its name; so is nothing, and an image that does not decode.
    let mut program = b"MZ\x90\x00\x03\x00\x00\x00".to_vec();
    program.extend(std::iter::repeat_n(0u8, 5000));
    for (name, body, status, code) in [
        ("invoice.pdf", program, 400, "unsupported_type"),
        ("empty.txt", Vec::new(), 400, "empty_file"),
        (
            "broken.png",
            b"\x89PNG\r\n\x1a\nnot really a png at all".to_vec(),
            400,
            "bad_image",
        ),
        // 16,384 × 8,192 (512 MiB as RGBA) from a few bytes: refused on its header.
        ("bomb.png", png_header(16_384, 8_192), 400, "bad_image"),
    ] {
        let (got, body) = upload(&app, "/v1/web/attachments", &visitor, name, body).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{name}: {body}"
        );
        if name == "bomb.png" {
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("megapixels"), "{body}");
        }
    }
    // Without a token: refused before a byte is kept.
    let response = app
        .http
        .post(app.url("/v1/web/attachments?name=x.png"))
        .body(png(8, 8))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // The tenant lowers the image limit and turns customers' attachments off.
    let (status, body) = patch_settings(&app, json!({"attachments":{"image_max_mb":1}})).await;
    assert_eq!(status, 200, "{body}");
    app.server.state.chat.forget_tenant_settings(&app.tenant);
    let big = noisy_png(700);
    assert!(
        big.len() > 1024 * 1024,
        "the test image is {} bytes",
        big.len()
    );
    let (status, body) = upload(&app, "/v1/web/attachments", &visitor, "big.png", big).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("too_large")),
        "{body}"
    );

    // One visitor cannot send another's upload.
    let (_, mine) = upload(&app, "/v1/web/attachments", &visitor, "a.png", png(16, 16)).await;
    let mut theirs = app.customer_ws(&other).await;
    theirs
        .send(json!({"type":"send","client_msg_id":"x1","text":"look","attachments":[mine["id"]]}))
        .await;
    let refused = theirs.expect_type("error").await;
    assert_eq!(refused["code"], "bad_attachment");
    // Nor more than ten, nor one twice.
    let ids: Vec<Value> = (0..11).map(|_| mine["id"].clone()).collect();
    let mut own = app.customer_ws(&visitor).await;
    own.send(json!({"type":"send","client_msg_id":"y1","attachments":ids}))
        .await;
    assert_eq!(
        own.expect_type("error").await["code"],
        "too_many_attachments"
    );
    own.send(json!({"type":"send","client_msg_id":"y2","attachments":[mine["id"], mine["id"]]}))
        .await;
    assert_eq!(own.expect_type("error").await["code"], "bad_attachment");

    let (status, body) = patch_settings(&app, json!({"attachments":{"customers":false}})).await;
    assert_eq!(status, 200, "{body}");
    app.server.state.chat.forget_tenant_settings(&app.tenant);
    let (status, body) = upload(&app, "/v1/web/attachments", &visitor, "a.png", png(16, 16)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("attachments_off")),
        "{body}"
    );
    // A type outside the known ones is a settings error.
    let (status, _) =
        patch_settings(&app, json!({"attachments":{"allowed_types":["text/html"]}})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_photo_alone_goes_to_a_person_and_old_attachments_are_swept() {
    let app = TestApp::spawn_bot_first().await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    let (_, view) = upload(
        &app,
        "/v1/web/attachments",
        &visitor,
        "photo.png",
        png(64, 48),
    )
    .await;
    // A small image's thumbnail is not enlarged.
    let thumbnail = fetch(&app, view["thumbnail_url"].as_str().unwrap()).await;
    let small = image::load_from_memory(&thumbnail.bytes().await.unwrap()).expect("a jpeg");
    assert_eq!((small.width(), small.height()), (64, 48));
    customer
        .send(json!({"type":"send","client_msg_id":"c1","attachments":[view["id"]]}))
        .await;
    customer.expect_type("receipt").await;
    let bot = customer
        .expect("the bot's reply", |f| {
            f["type"] == "message" && f["sender"] == "bot"
        })
        .await;
    assert!(bot["text"].as_str().unwrap().contains("colleague"), "{bot}");
    let conversation_id = bot["conversation_id"].as_str().unwrap().to_owned();
    let state = &app.server.state;
    let mut handed_off = false;
    for _ in 0..50 {
        let conversation = state
            .store
            .conversation(&conversation_id)
            .await
            .unwrap()
            .unwrap();
        if conversation.state == store::ConversationState::Queued {
            assert_eq!(conversation.handoff_reason.as_deref(), Some("attachment"));
            handed_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(handed_off, "the conversation went to the queue");

    // Retention: nothing goes while it is off; with one day, an older attachment goes, blob
    // and row, and its link answers 404.
    let link = bot_free_link(&app, &view).await;
    assert_eq!(state.chat.apply_attachment_retention().await.unwrap(), 0);
    let (status, body) = patch_settings(&app, json!({"attachments":{"retention_days":1}})).await;
    assert_eq!(status, 200, "{body}");
    state.chat.forget_tenant_settings(&app.tenant);
    assert_eq!(
        state.chat.apply_attachment_retention().await.unwrap(),
        0,
        "a new one stays"
    );
    let mut old = state
        .store
        .attachment(&app.tenant, view["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    // The same attachment as if uploaded two days ago.
    old.id = "old-one".into();
    old.created_at -= 2 * 86_400_000;
    state.store.insert_attachment(&old).await.unwrap();
    assert_eq!(state.chat.apply_attachment_retention().await.unwrap(), 1);
    assert!(state
        .store
        .attachment(&app.tenant, "old-one")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        fetch(&app, &link).await.status(),
        200,
        "the recent one is still there"
    );
}

/// A fresh link to an upload, as a history read would give.
async fn bot_free_link(app: &TestApp, view: &Value) -> String {
    let record = app
        .server
        .state
        .store
        .attachment(&app.tenant, view["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    app.server.state.chat.files.view(&record).url
}

/// A tenant's routing policy built against WIT 0.2.0 sees what the customer sent: a photo sends
/// the chat to the claims group, while a text-only chat goes where it always did.
#[tokio::test]
async fn a_routing_policy_routes_by_the_customers_attachments() {
    let app = TestApp::spawn().await;
    let policy = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../policies/fixtures/claims-routing.wasm"),
    )
    .expect("fixture");
    let (status, body) = app
        .admin_put(
            &format!("/v1/tenants/{}/policies/routing", app.tenant),
            "application/wasm",
            policy,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut routed = Vec::new();
    for (client, photo) in [("with-photo", true), ("text-only", false)] {
        let visitor = app.visitor().await;
        let mut customer = app.customer_ws(&visitor).await;
        let mut frame =
            json!({"type":"send","client_msg_id":client,"text":"the cup arrived broken"});
        if photo {
            let (status, view) = upload(
                &app,
                "/v1/web/attachments",
                &visitor,
                "cup.png",
                png(32, 32),
            )
            .await;
            assert_eq!(status, 201, "{view}");
            frame["attachments"] = json!([view["id"]]);
        }
        customer.send(frame).await;
        let receipt = customer.expect_type("receipt").await;
        let conversation_id = receipt["conversation_id"].as_str().unwrap().to_owned();
        let mut queued = None;
        for _ in 0..50 {
            let conversation = app
                .server
                .state
                .store
                .conversation(&conversation_id)
                .await
                .unwrap()
                .unwrap();
            if conversation.state == store::ConversationState::Queued {
                queued = Some((conversation.skill_group, conversation.priority));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        routed.push(queued.expect("queued"));
    }
    assert_eq!(
        routed,
        [("claims".to_owned(), 6), ("general".to_owned(), 2)]
    );
}

/// Erasing a customer (an admin's `DELETE customers/{id}`): refused while their conversation is
/// open; once closed, the profile, the conversation, its messages and both sides' attachments
/// (blobs and links) are gone, their token opens nothing, and the audit log keeps the counts.
#[tokio::test]
async fn erasing_a_customer_removes_their_conversation_and_attachments() {
    let app = TestApp::spawn().await;
    let PhotoChat {
        mut agent,
        mut customer,
        visitor,
        conversation_id,
        photo,
        pdf,
        ..
    } = photo_chat(&app).await;
    let customer_id = app
        .server
        .state
        .store
        .conversation(&conversation_id)
        .await
        .unwrap()
        .unwrap()
        .customer_id;
    // Uploaded but never sent: theirs all the same.
    let (_, unsent) = upload(&app, "/v1/web/attachments", &visitor, "more.png", png(8, 8)).await;
    let links = [
        photo["url"].as_str().unwrap().to_owned(),
        photo["thumbnail_url"].as_str().unwrap().to_owned(),
        unsent["url"].as_str().unwrap().to_owned(),
        pdf["url"].as_str().unwrap().to_owned(),
    ];
    for link in &links {
        assert_eq!(fetch(&app, link).await.status(), 200);
    }

    let customer_path = format!("/v1/tenants/{}/customers/{customer_id}", app.tenant);
    let erase = || app.call(reqwest::Method::DELETE, &customer_path, &app.admin_key);
    let (status, body) = erase().await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    for link in &links {
        assert_eq!(fetch(&app, link).await.status(), 200, "nothing went");
    }

    agent
        .send(json!({"type":"close","conversation_id":conversation_id}))
        .await;
    agent.expect_type("unassigned").await;
    // The close's quality score is written after the close; erase once it is in.
    let detail = format!("/v1/tenants/{}/conversations/{conversation_id}", app.tenant);
    for _ in 0..100 {
        let (_, body) = app.admin_get(&detail).await;
        if body["quality"]
            .as_array()
            .is_some_and(|scores| !scores.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = erase().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["customers"], 1);
    assert_eq!(body["conversations"], 1);
    assert_eq!(body["attachments"], 3);
    assert!(body["messages"].as_u64().unwrap() >= 3, "{body}");
    // Their connection ends.
    let ended = customer.expect_type("error").await;
    assert_eq!(ended["code"], "token_revoked");

    for link in &links {
        assert_eq!(fetch(&app, link).await.status(), 404, "{link}");
    }
    assert_eq!(app.admin_get(&detail).await.0, 404);
    let (status, _) = app
        .admin_get(&format!(
            "/v1/tenants/{}/customers/{customer_id}",
            app.tenant
        ))
        .await;
    assert_eq!(status, 404);
    let store = &app.server.state.store;
    assert!(store
        .customer_attachments(&app.tenant, &customer_id)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .recent_messages(&conversation_id, 10)
        .await
        .unwrap()
        .is_empty());
    // Their token opens no session any more.
    let (status, _) = app
        .call(reqwest::Method::POST, "/v1/web/ticket", &visitor)
        .await;
    assert_eq!(status, 401);
    assert_eq!(erase().await.0, 404, "erased once");

    let (_, audit) = app
        .admin_get(&format!("/v1/tenants/{}/audit", app.tenant))
        .await;
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["action"] == "DELETE customers/{id}")
        .expect("an audit entry");
    assert_eq!(entry["summary"]["erased"]["attachments"], 3);
}

/// A client open past a link's hour asks for fresh links: visitors for messages of their own
/// conversation, agents for a conversation they hold, and nobody for anyone else's.
#[tokio::test]
async fn fresh_links_for_the_messages_a_caller_may_read() {
    let app = TestApp::spawn().await;
    let (_, other_agent) = app.create_agent("Bob", &["billing"], 3).await;
    let PhotoChat {
        agent_token,
        visitor,
        conversation_id,
        photo,
        photo_seq,
        pdf_seq,
        ..
    } = photo_chat(&app).await;

    let renew = |path: String, token: String| {
        let app = &app;
        async move { app.call(reqwest::Method::GET, &path, &token).await }
    };
    // The visitor: both messages of their conversation (a seq without attachments is left out).
    let (status, body) = renew(
        format!("/v1/web/attachments?seqs={pdf_seq},{photo_seq},1,999"),
        visitor.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let messages = body["messages"].as_array().unwrap();
    let seqs: Vec<i64> = messages
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [photo_seq, pdf_seq]);
    assert_eq!(messages[0]["attachments"][0]["id"], photo["id"]);
    for message in messages {
        let link = message["attachments"][0]["url"].as_str().unwrap();
        assert_eq!(fetch(&app, link).await.status(), 200, "{link}");
    }
    let thumbnail = messages[0]["attachments"][0]["thumbnail_url"]
        .as_str()
        .unwrap();
    assert_eq!(fetch(&app, thumbnail).await.status(), 200);

    // Another visitor asks for the same seqs: their own conversation has none of it.
    let stranger = app.visitor().await;
    let (status, body) = renew(
        format!("/v1/web/attachments?seqs={photo_seq},{pdf_seq}"),
        stranger,
    )
    .await;
    assert_eq!((status, body["messages"].clone()), (200, json!([])));

    // The agent who holds the chat; another agent gets nothing of it.
    let path = format!("/v1/agent/attachments?conversation_id={conversation_id}&seqs={photo_seq}");
    let (status, body) = renew(path.clone(), agent_token.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["attachments"][0]["name"], "cup.png");
    let (status, body) = renew(path, other_agent).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // Bad lists are refused with their code.
    let too_many = (1..=51)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for seqs in ["", "x", "0", "-3", too_many.as_str()] {
        let (status, body) =
            renew(format!("/v1/web/attachments?seqs={seqs}"), visitor.clone()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_seqs")),
            "{seqs}"
        );
    }
}

/// A chat an agent holds: the visitor sent a photo with the caption "broken", the agent answered
/// with a PDF captioned "here", and the visitor received it.
struct PhotoChat {
    agent: switchboard_tests::WsClient,
    agent_token: String,
    customer: switchboard_tests::WsClient,
    visitor: String,
    conversation_id: String,
    /// The photo as uploaded, and the PDF as the visitor received it (links included).
    photo: Value,
    pdf: Value,
    photo_seq: i64,
    pdf_seq: i64,
}

async fn photo_chat(app: &TestApp) -> PhotoChat {
    let (_, agent_token) = app.create_agent("Alice", &["general"], 3).await;
    let mut agent = app.agent_ws(&agent_token).await;
    let visitor = app.visitor().await;
    let mut customer = app.customer_ws(&visitor).await;
    let (_, photo) = upload(app, "/v1/web/attachments", &visitor, "cup.png", png(64, 48)).await;
    customer
        .send(
            json!({"type":"send","client_msg_id":"c1","text":"broken","attachments":[photo["id"]]}),
        )
        .await;
    let photo_seq = customer.expect_type("receipt").await["seq"]
        .as_i64()
        .unwrap();
    let assigned = agent.expect_type("assigned").await;
    let conversation_id = assigned["conversation"]["id"].as_str().unwrap().to_owned();
    let (_, uploaded) = upload(
        app,
        "/v1/agent/attachments",
        &agent_token,
        "label.pdf",
        PDF.to_vec(),
    )
    .await;
    agent
        .send(json!({"type":"send","conversation_id":conversation_id,"client_msg_id":"a1","text":"here","attachments":[uploaded["id"]]}))
        .await;
    let pdf_seq = agent.expect_type("receipt").await["seq"].as_i64().unwrap();
    let reply = customer
        .expect("the pdf", |f| {
            f["type"] == "message" && f["sender"] == "agent"
        })
        .await;
    PhotoChat {
        agent,
        agent_token,
        customer,
        visitor,
        conversation_id,
        photo,
        pdf: reply["attachments"][0].clone(),
        photo_seq,
        pdf_seq,
    }
}

/// A tenant's customers share one daily upload budget (anonymous visitors can make as many
/// sessions as they like, so a per-visitor budget would not keep them from filling the disk):
/// past it every visitor's upload is refused with 429 until the day's uploads age out.
#[tokio::test]
async fn customers_share_a_daily_upload_budget() {
    let app = TestApp::spawn().await;
    let (status, body) =
        patch_settings(&app, json!({"attachments": {"customer_daily_mb": 1}})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        patch_settings(&app, json!({"attachments": {"customer_daily_mb": 0}})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_settings")),
        "{body}"
    );
    let notes = vec![b'a'; 600 * 1024];
    for expected in [201, 201, 429] {
        let visitor = app.visitor().await;
        let (status, body) = upload(
            &app,
            "/v1/web/attachments",
            &visitor,
            "notes.txt",
            notes.clone(),
        )
        .await;
        assert_eq!(status, expected, "{body}");
        if expected == 429 {
            assert_eq!(body["code"], "rate_limited", "{body}");
        }
    }
}
