//! The ceiling for `make bench`: a bare actix-web `GET /hello`, built from the
//! same actix-web version as keyward. Workers default to the CPUs the process
//! may run on, so under `taskset -c 0` it has one, like keyward.
use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("HELLO_LISTEN").unwrap_or_else(|_| "127.0.0.1:8090".into());
    HttpServer::new(|| App::new().route("/hello", web::get().to(|| async { HttpResponse::Ok().body("hello") })))
        .bind(listen)?
        .run()
        .await
}
