#define FUSE_USE_VERSION 312
#include "fs/fuse_mount.h"

#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "common/log.h"
#include "common/memory_info.h"
#include "fs/mountpoint.h"

namespace cachefs::fs {

// Requests of up to 1 MiB: the kernel's FUSE limit (max_pages 256), 8x what gocryptfs 2.3 asks.
constexpr unsigned kMaxRead = 1 << 20;

struct FuseHandlers {
  static FuseMount& Self(fuse_req_t req) {
    return *static_cast<FuseMount*>(fuse_req_userdata(req));
  }

  static void FillEntry(FuseMount& self, const Inode& inode, fuse_entry_param* entry) {
    *entry = {};
    entry->ino = inode.ino;
    entry->generation = 1;
    entry->attr_timeout = self.options_.cache_timeout_sec;
    entry->entry_timeout = self.options_.cache_timeout_sec;
    self.fs_.Stat(inode, &entry->attr);
  }

  static void Init(void*, fuse_conn_info* conn) {
    // libfuse 3.14 refuses the session unless this repeats the max_read mount option.
    conn->max_read = kMaxRead;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    if (conn->capable & FUSE_CAP_READDIRPLUS) {
      conn->want |= FUSE_CAP_READDIRPLUS;
      conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;  // attributes are in memory: always send them
    }
    if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) {
      conn->want |= FUSE_CAP_CACHE_SYMLINKS;
    }
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) {
      conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    }
    // Attributes never change, so the kernel must not drop cached pages on a getattr.
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  }

  static void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    FuseMount& self = Self(req);
    const Inode* child = nullptr;
    int rc = self.fs_.Lookup(parent, name, &child);
    if (rc == ENOENT) {
      // A negative entry with a timeout: loaders probe for many optional files.
      fuse_entry_param entry = {};
      entry.entry_timeout = self.options_.cache_timeout_sec;
      fuse_reply_entry(req, &entry);
      return;
    }
    if (rc != 0) {
      fuse_reply_err(req, rc);
      return;
    }
    fuse_entry_param entry;
    FillEntry(self, *child, &entry);
    fuse_reply_entry(req, &entry);
  }

  static void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    FuseMount& self = Self(req);
    struct stat st;
    int rc = self.fs_.GetAttr(ino, &st);
    if (rc != 0) {
      fuse_reply_err(req, rc);
      return;
    }
    fuse_reply_attr(req, &st, self.options_.cache_timeout_sec);
  }

  static void ReadLink(fuse_req_t req, fuse_ino_t ino) {
    std::string_view target;
    int rc = Self(req).fs_.ReadLink(ino, &target);
    if (rc != 0) {
      fuse_reply_err(req, rc);
      return;
    }
    std::string terminated(target);  // fuse_reply_readlink takes a C string
    fuse_reply_readlink(req, terminated.c_str());
  }

  static void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    FuseMount& self = Self(req);
    const Inode* inode = nullptr;
    int rc = self.fs_.Open(ino, fi->flags, &inode);
    if (rc != 0) {
      fuse_reply_err(req, rc);
      return;
    }
    // Plaintext never changes while mounted: keep the page cache across opens, and let mmap
    // share it (no direct_io, which would defeat mmap).
    std::call_once(self.readahead_once_, [&self] { self.WidenReadahead(); });
    fi->keep_cache = 1;
    fi->noflush = 1;
    if (self.filler_) {
      self.filler_->FileOpened(*inode);
    }
    fuse_reply_open(req, fi);
  }

  static void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
    FuseMount& self = Self(req);
    const Inode* inode = self.fs_.table().Find(ino);
    if (inode == nullptr || inode->type != NodeType::kFile) {
      fuse_reply_err(req, inode == nullptr ? ENOENT : EISDIR);
      return;
    }
    auto start = std::chrono::steady_clock::now();
    auto data = self.fs_.reader().Read(*inode, static_cast<uint64_t>(off), size);
    self.read_latency_.Record(std::chrono::steady_clock::now() - start);
    if (!data) {
      fuse_reply_err(req, data.error().ToErrno());
      return;
    }
    if (self.filler_) {
      self.filler_->MarkServed(ino, static_cast<uint64_t>(off), data->size());
    }
    fuse_reply_buf(req, reinterpret_cast<const char*>(data->data()), data->size());
  }

  static void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    const Inode* inode = nullptr;
    int rc = Self(req).fs_.OpenDir(ino, &inode);
    if (rc != 0) {
      fuse_reply_err(req, rc);
      return;
    }
    fi->cache_readdir = 1;  // listings never change
    fi->keep_cache = 1;
    fuse_reply_open(req, fi);
  }

  // Entries are ".", "..", then the children in name order; the offset of an entry is its
  // index + 1, so a listing resumes exactly where the kernel's buffer filled up.
  static void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, bool plus) {
    FuseMount& self = Self(req);
    const Inode* dir = nullptr;
    int rc = self.fs_.OpenDir(ino, &dir);
    if (rc != 0) {
      fuse_reply_err(req, rc);
      return;
    }
    std::string buffer(size, '\0');
    size_t used = 0;
    const size_t total = dir->children.size() + 2;
    for (size_t index = static_cast<size_t>(offset); index < total; ++index) {
      const Inode* inode = nullptr;
      const char* name = nullptr;
      if (index == 0) {
        inode = dir;
        name = ".";
      } else if (index == 1) {
        inode = self.fs_.table().Find(dir->parent);
        name = "..";
      } else {
        const DirEntry& entry = dir->children[index - 2];
        inode = self.fs_.table().Find(entry.ino);
        name = entry.name.c_str();
      }
      size_t needed;
      if (plus) {
        fuse_entry_param entry;
        FillEntry(self, *inode, &entry);
        needed = fuse_add_direntry_plus(req, buffer.data() + used, size - used, name, &entry,
                                        static_cast<off_t>(index + 1));
      } else {
        struct stat st;
        self.fs_.Stat(*inode, &st);
        needed = fuse_add_direntry(req, buffer.data() + used, size - used, name, &st,
                                   static_cast<off_t>(index + 1));
      }
      if (needed > size - used) {
        break;
      }
      used += needed;
    }
    fuse_reply_buf(req, buffer.data(), used);
  }

  static void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info*) {
    ReadDirCommon(req, ino, size, offset, false);
  }

  static void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                          fuse_file_info*) {
    ReadDirCommon(req, ino, size, offset, true);
  }

  static void Release(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    FuseMount& self = Self(req);
    if (self.filler_) {
      self.filler_->FileReleased(ino);
    }
    fuse_reply_err(req, 0);
  }

  static void StatFs(fuse_req_t req, fuse_ino_t) {
    const InodeTable& table = Self(req).fs_.table();
    struct statvfs st = {};
    st.f_bsize = 4096;
    st.f_frsize = 4096;
    st.f_blocks = (table.counts().plaintext_bytes + 4095) / 4096;
    st.f_files = table.size();
    st.f_namemax = 255;
    fuse_reply_statfs(req, &st);
  }

  static void GetXattr(fuse_req_t req, fuse_ino_t, const char*, size_t) {
    fuse_reply_err(req, ENODATA);  // the model carries no extended attributes
  }

  static void ListXattr(fuse_req_t req, fuse_ino_t, size_t size) {
    if (size == 0) {
      fuse_reply_xattr(req, 0);
    } else {
      fuse_reply_buf(req, nullptr, 0);
    }
  }

  static void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
    fuse_reply_err(req, Self(req).fs_.Access(ino, mask));
  }

  // Every modification answers EROFS (the kernel usually refuses first: the mount is "ro").
  static void Refuse(fuse_req_t req) { fuse_reply_err(req, Self(req).fs_.RefuseWrite()); }
  static void SetAttr(fuse_req_t req, fuse_ino_t, struct stat*, int, fuse_file_info*) {
    Refuse(req);
  }
  static void MkNod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { Refuse(req); }
  static void MkDir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { Refuse(req); }
  static void Unlink(fuse_req_t req, fuse_ino_t, const char*) { Refuse(req); }
  static void SymLink(fuse_req_t req, const char*, fuse_ino_t, const char*) { Refuse(req); }
  static void Rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
    Refuse(req);
  }
  static void Link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { Refuse(req); }
  static void Write(fuse_req_t req, fuse_ino_t, const char*, size_t, off_t, fuse_file_info*) {
    Refuse(req);
  }
  static void SetXattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
    Refuse(req);
  }
  static void RemoveXattr(fuse_req_t req, fuse_ino_t, const char*) { Refuse(req); }
  static void Create(fuse_req_t req, fuse_ino_t, const char*, mode_t, fuse_file_info*) {
    Refuse(req);
  }
  static void Fallocate(fuse_req_t req, fuse_ino_t, int, off_t, off_t, fuse_file_info*) {
    Refuse(req);
  }
  static void CopyFileRange(fuse_req_t req, fuse_ino_t, off_t, fuse_file_info*, fuse_ino_t, off_t,
                            fuse_file_info*, size_t, int) {
    Refuse(req);
  }

  static fuse_lowlevel_ops Operations() {
    fuse_lowlevel_ops ops = {};
    ops.init = Init;
    ops.lookup = Lookup;
    ops.getattr = GetAttr;
    ops.readlink = ReadLink;
    ops.open = Open;
    ops.read = Read;
    ops.release = Release;
    ops.opendir = OpenDir;
    ops.readdir = ReadDir;
    ops.readdirplus = ReadDirPlus;
    ops.statfs = StatFs;
    ops.getxattr = GetXattr;
    ops.listxattr = ListXattr;
    ops.access = Access;
    ops.setattr = SetAttr;
    ops.mknod = MkNod;
    ops.mkdir = MkDir;
    ops.unlink = Unlink;
    ops.rmdir = Unlink;
    ops.symlink = SymLink;
    ops.rename = Rename;
    ops.link = Link;
    ops.write = Write;
    ops.setxattr = SetXattr;
    ops.removexattr = RemoveXattr;
    ops.create = Create;
    ops.fallocate = Fallocate;
    ops.copy_file_range = CopyFileRange;
    return ops;
  }
};

namespace {

// Detaches the mount: lets the kernel fail the workers' reads with ENODEV so the loop returns.
void DetachMount(const std::string& mountpoint) {
  if (umount2(mountpoint.c_str(), MNT_DETACH) == 0 || errno == EINVAL || errno == ENOENT) {
    return;
  }
  if (errno == EPERM) {
    // Not root: fusermount3 is setuid and may unmount what this user mounted.
    pid_t pid = fork();
    if (pid == 0) {
      execlp("fusermount3", "fusermount3", "-u", "-z", "--", mountpoint.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    if (pid > 0) {
      int status;
      waitpid(pid, &status, 0);
    }
  }
}

}  // namespace

Result<std::unique_ptr<FuseMount>> FuseMount::Create(Filesystem& fs, const MountOptions& options) {
  std::unique_ptr<FuseMount> mount(new FuseMount(fs, options));
  std::string mount_options =
      "ro,default_permissions,subtype=cachefs,max_read=" + std::to_string(kMaxRead) +
      ",fsname=" + options.fsname;
  if (options.allow_other) {
    mount_options += ",allow_other";
  }
  for (const auto& option : options.kernel_options) {
    mount_options += "," + option;
  }
  std::vector<std::string> argv_storage = {"cachefs", "-o", mount_options};
  std::vector<char*> argv;
  for (auto& arg : argv_storage) {
    argv.push_back(arg.data());
  }
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = FuseHandlers::Operations();
  mount->session_ = fuse_session_new(&args, &ops, sizeof(ops), mount.get());
  fuse_opt_free_args(&args);  // option parsing may have replaced them with a copy it allocated
  if (mount->session_ == nullptr) {
    return Error(Errc::kInvalidArgument, "invalid FUSE options: " + mount_options);
  }
  if (fuse_session_mount(mount->session_, options.mountpoint.c_str()) != 0) {
    return Error(Errc::kIo, "FUSE mount at " + options.mountpoint +
                                " failed (is /dev/fuse available, and are we root or is "
                                "fusermount3 installed?)");
  }
  mount->mounted_ = true;

  if (options.decrypt_ahead) {
    fuse_session* session = mount->session_;
    uint64_t budget =
        options.decrypt_ahead_budget != 0 ? options.decrypt_ahead_budget : MemoryLimitBytes() / 2;
    mount->filler_ = std::make_unique<KernelCacheFiller>(
        fs.table(), fs.reader(),
        [session](InodeNumber ino, uint64_t offset, std::span<const uint8_t> data) {
          fuse_bufvec buf = FUSE_BUFVEC_INIT(data.size());
          buf.buf[0].mem = const_cast<uint8_t*>(data.data());
          return fuse_lowlevel_notify_store(session, ino, static_cast<off_t>(offset), &buf,
                                            FUSE_BUF_NO_SPLICE);
        },
        budget);
  }
  return mount;
}

FuseMount::~FuseMount() {
  filler_.reset();  // its thread writes to the session
  if (session_ != nullptr) {
    if (mounted_) {
      fuse_session_unmount(session_);
    }
    fuse_session_destroy(session_);
  }
}

// The kernel applies FUSE's negotiated readahead (at most 128 KiB) when it processes the INIT
// reply, so the wider window is set on the first OPEN: INIT is done by then, and the kernel
// initialises a file's readahead state from the device after OPEN returns. (Polling the mount
// point from another thread instead would pin the mount and make an early unmount fail.)
void FuseMount::WidenReadahead() {
  auto device = MountDevice(options_.mountpoint);
  Status status = device ? SetReadaheadKb(*device, options_.readahead_kb) : Status(device.error());
  if (!status) {
    CACHEFS_LOG(kWarn, "fs") << status.error().message()
                             << "; mmap and sequential reads will be slower";
  }
}

Status FuseMount::Serve() {
  fuse_loop_config* config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(config, 1);
  fuse_loop_cfg_set_max_threads(config, options_.max_threads);
  fuse_loop_cfg_set_idle_threads(config, 4);
  int rc = fuse_session_loop_mt(session_, config);
  fuse_loop_cfg_destroy(config);
  filler_.reset();
  fuse_session_unmount(session_);
  mounted_ = false;
  if (rc != 0) {
    return Error(Errc::kIo, std::string("FUSE session ended with an error: ") +
                                std::strerror(rc < 0 ? -rc : rc));
  }
  return Status::Ok();
}

void FuseMount::Stop() {
  if (session_ == nullptr) {
    return;
  }
  fuse_session_exit(session_);
  DetachMount(options_.mountpoint);
}

void FuseMount::InvalidateKernelCache() {
  if (filler_) {
    filler_->Reset();
  }
  for (const Inode& inode : fs_.table().inodes()) {
    if (inode.type == NodeType::kFile) {
      // offset 0, length 0 invalidates the whole page cache of the inode; ENOENT means the
      // kernel holds nothing for it.
      fuse_lowlevel_notify_inval_inode(session_, inode.ino, 0, 0);
    }
  }
}

}  // namespace cachefs::fs
