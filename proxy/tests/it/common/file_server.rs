//! A backend that answers as a plain static file server does (`python3 -m http.server` in
//! an empty directory): `/` is 200, every other path 404; it counts the paths it was asked.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The server; it stops when dropped.
pub struct FileServer {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl FileServer {
    /// Start on 127.0.0.1:0.
    pub async fn start() -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let path = text.split(' ').nth(1).unwrap_or("").to_string();
                    let answer: &[u8] = if path == "/" {
                        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\nlisting\r\n"
                    } else {
                        b"HTTP/1.0 404 File not found\r\nContent-Type: text/html\r\nContent-Length: 10\r\n\r\nnot found\n"
                    };
                    seen.lock().unwrap().push(path);
                    let _ = s.write_all(answer).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        FileServer { addr, paths, task }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The request paths it answered, in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
