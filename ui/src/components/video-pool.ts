// One <video> element per media stream, kept across screens. A new element needs a moment
// (about 150 ms here) before its first frame; moving a playing one is instant. So the
// "clinician is ready" screen starts the others' video out of sight, and the visit moves
// those very elements into its tiles when the patient presses Join.

const pool = new WeakMap<MediaStream, HTMLVideoElement>();

export function videoFor(stream: MediaStream): HTMLVideoElement {
  let video = pool.get(stream);
  if (!video) {
    video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    video.srcObject = stream;
    pool.set(stream, video);
  }
  if (video.paused) void video.play().catch(() => undefined);
  return video;
}
