# node-gyp build: the BPF objects (clang -target bpf) and native/libcaplance.so, the flat C
# library over libbpf that TypeScript reaches through ffi-rs; caplance-nfq (the NFQUEUE worker)
# and caplance-tun (the backend's TUN decapsulator) are executables of their own.
# scripts/build-bpf.sh holds the one clang command, so `lbctl load` can rebuild stale objects
# the same way.
{
  "targets": [
    {
      "target_name": "bpf_objects",
      "type": "none",
      "actions": [
        {
          "action_name": "clang_bpf",
          "inputs": [
            "scripts/build-bpf.sh",
            "<!@(ls -1 bpf/*.c bpf/*.h bench/*.bpf.c 2>/dev/null || true)"
          ],
          "outputs": ["<(module_root_dir)/build/bpf/.stamp"],
          "action": ["bash", "scripts/build-bpf.sh", "<(module_root_dir)/build/bpf"]
        }
      ]
    },
    {
      "target_name": "caplance",
      "type": "shared_library",
      "product_name": "caplance",
      "sources": ["<!@(ls -1 native/*.c)"],
      "include_dirs": ["bpf", "native"],
      "cflags": ["-O2", "-Wall", "-Werror", "-fPIC", "-fvisibility=hidden", "-std=gnu11", "-fno-strict-aliasing"],
      "cflags!": ["-fno-exceptions"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    },
    {
      "target_name": "caplance-nfq",
      "type": "executable",
      "sources": ["native/worker/nfq_worker.c", "native/lb_engine.c"],
      "include_dirs": ["bpf", "native"],
      "cflags": ["-O2", "-Wall", "-Werror", "-std=gnu11", "-fno-strict-aliasing", "-pthread"],
      "libraries": ["-lnetfilter_queue", "-lnfnetlink", "-pthread"]
    },
    {
      "target_name": "udp_blast",
      "type": "executable",
      "sources": ["bench/udp_blast.c"],
      "cflags": ["-O2", "-Wall", "-Werror", "-std=gnu11"]
    },
    {
      "target_name": "udp_ping",
      "type": "executable",
      "sources": ["bench/udp_ping.c"],
      "cflags": ["-O2", "-Wall", "-Werror", "-std=gnu11"]
    },
    {
      "target_name": "caplance-tun",
      "type": "executable",
      "sources": ["native/tun/tun_decap.c", "native/tun_decide.c"],
      "include_dirs": ["native"],
      "cflags": ["-O2", "-Wall", "-Werror", "-std=gnu11", "-fno-strict-aliasing"]
    },
    {
      "target_name": "tun_blast",
      "type": "executable",
      "sources": ["bench/tun_blast.c"],
      "cflags": ["-O2", "-Wall", "-Werror", "-std=gnu11"]
    },
    {
      "target_name": "tun_floor",
      "type": "executable",
      "sources": ["bench/tun_floor.c"],
      "cflags": ["-O2", "-Wall", "-Werror", "-std=gnu11"]
    }
  ]
}
